"""The game model: game state and its updates, the value codec, the store, the game state
machine, game events and their handlers, and interpolation between states.
"""
