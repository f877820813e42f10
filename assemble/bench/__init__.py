"""Side-by-side benchmarks: stackform against a hand-written PyTorch reference and peers.

Run with ``stackform bench`` (or ``python -m stackform.assemble bench``). Nothing here
is imported by the library itself.
"""
