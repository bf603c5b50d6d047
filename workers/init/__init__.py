"""The node init: its C source and how set-up builds it (`build`)."""
