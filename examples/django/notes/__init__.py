"""The example's notes: an API a signed-in user can create and list notes with."""
