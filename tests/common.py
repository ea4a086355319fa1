"""Constants shared by several test modules (kept out of conftest so modules can import them)."""

# Only ever used by tests; the product has no built-in secret.
TEST_SECRET = "test-secret-key-not-for-production"
