"""Jinja2 templates shipped with ticketd, one folder per language (read as package data)."""
