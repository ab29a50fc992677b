"""The leak audit of a label set: the shortcut battery and the leakage learner."""
