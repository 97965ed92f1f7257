# A solution file is plain Python: get_ipython().system(...) is what `!...` runs.
get_ipython().system("mwkit svkill v1 --now")  # SIGKILL: no deregistering, no draining
reloads = reload_popular()
show(reloads)
print("failed reloads:", sum(body["service_id"] is None for body in reloads))
print("instances that answered:", sorted({body["instance"] for body in reloads}))
get_ipython().system("mwkit status")
# What to see: no reload failed. A call that found the killed instance refused was sent
# again to another one (Sherlock's retry), and Sherlock then left the dead one out
# (ejection); the wizard lists it no more. Notebook 06 shows the same crash with retries off.
get_ipython().system("mwkit svrun popularity v1 v1")  # back to three, as before
