"""Constants and small assertions shared by the data tests."""

#: Documents and vocabulary of the shared test tokenizer: small enough to train in about a second.
SMALL_DOCS = 300
SMALL_VOCAB = 1000


def assert_one_line(error: BaseException) -> str:
    """The error message, checked to be a single line (what users see before training starts)."""
    message = str(error)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"
    return message
