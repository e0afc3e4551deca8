"""Pure Block Kit builders: data in, JSON-ready blocks out. No Slack calls here."""
