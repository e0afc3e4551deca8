"""smtpmatch: check and perform SMTP matching of on-prem AD users to Entra ID users."""

__version__ = "0.1.0"
