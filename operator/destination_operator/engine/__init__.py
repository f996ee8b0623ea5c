"""The work queue, the cache of watched objects, fair probe slots and the worker loop."""
