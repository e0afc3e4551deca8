"""The fake Slack Web API takes file uploads the way ``files_upload_v2`` makes them (the scan's
CSV): an upload URL, the bytes POSTed to it, then the completion that shares the file."""

from __future__ import annotations

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.support.slack_fake import BOT_TOKEN, UPLOAD, FakeSlackApi


def test_files_upload_v2_shares_the_bytes_in_the_channel_and_thread(
    slack_api: FakeSlackApi,
) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.url)
    posted = client.chat_postMessage(channel="C_HELPDESK", text="scan summary")

    answer = client.files_upload_v2(
        channel="C_HELPDESK",
        thread_ts=posted["ts"],
        filename="scan.csv",
        content="address,verdict\njane@contoso.com,eligible\n",
        title="Scan",
    )

    [upload] = slack_api.files("C_HELPDESK")
    assert answer["file"]["id"] == upload.id
    assert upload.content == b"address,verdict\njane@contoso.com,eligible\n"
    assert (upload.filename, upload.title, upload.thread_ts) == ("scan.csv", "Scan", posted["ts"])
    assert [c.args["file_id"] for c in slack_api.calls(UPLOAD)] == [upload.id]


def test_a_completion_before_the_bytes_arrived_is_refused(slack_api: FakeSlackApi) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.url)
    url = client.files_getUploadURLExternal(filename="scan.csv", length=4)

    with pytest.raises(SlackApiError) as refused:
        client.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id="C1")
    assert refused.value.response["error"] == "file_not_found"

    assert httpx.post(str(url["upload_url"]), content=b"abc").status_code == 200
    with pytest.raises(SlackApiError) as short:
        client.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id="C1")
    assert short.value.response["error"] == "file_upload_size_mismatch"
    assert slack_api.files() == []
