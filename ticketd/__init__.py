"""ticketd: configuration, the command line and the wiring of the daemon."""
