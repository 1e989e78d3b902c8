"""The supervisor token the security tests give the app (and send, when they should)."""

TOKEN = "security-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
