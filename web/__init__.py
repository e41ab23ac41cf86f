"""The HTTP interface (issue 20): the API, its bearer tokens and its search.

Layers: storage < domain < outbound < ingest < web < ticketd. This package imports the services
below it; ticketd (the daemon, the `tokens` commands) imports it and hands it, as values, what it
needs of ticketd (web/services.py), so no import points up.
"""
