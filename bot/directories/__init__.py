"""Directory adapters: Active Directory (ldap3), Entra ID (msal + httpx) and the demo data."""
