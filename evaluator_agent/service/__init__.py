"""The proctor as an A2A server: the server, the request guard, tasks, fair share, the client.
"""
