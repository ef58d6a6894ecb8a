"""Rooms: many game worlds in one server, matchmaking between them, and their runners."""
