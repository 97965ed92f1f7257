stack.use_sherlock(retries=1, eject=True)
stack.scale(3)
retried, _, _, _ = under_load("scale 3 -> 1, no drain, retries",
                              lambda: stack.scale(1, drain=False))
print("failed reloads with retries but without the drain:", failed(retried))
# Retries hide most of it for a GET: a refused call is sent again elsewhere. Not always all:
# two instances are leaving at once, so a retry can land on the other one. And a POST that
# must not run twice is never retried: only the drain (deregister first, stop later) protects it.
