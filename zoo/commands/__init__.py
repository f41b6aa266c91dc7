"""Subcommands of `zoo` that are not LightningCLI ones (see `zoo.cli.EXTRA_COMMANDS`)."""
