# Sherlock without retries or ejection, HAProxy (runtime API) without its own checks,
# redispatch and retries (about 25 s). Prediction: both now fail calls after the kill,
# until the Directory drops the dead instance (its lease, a few seconds): what kept them
# at 0 was the safety net, not the discovery.
from mwkit.approaches.haproxy import HaproxyRuntime, haproxy_binary
from mwkit.approaches.sherlock import SherlockApproach
from mwkit.errors import StartFailed

bare_sherlock = SherlockApproach(stack.directory_url,
                                 settings=Settings().replace(retries=0, eject=False))
bare_sherlock.name = "Sherlock, no retries"
bare = [bare_sherlock]
try:
    haproxy_binary()
    bare_haproxy = HaproxyRuntime(stack.directory_url, check=False, workdir=stack.workdir)
    bare_haproxy.name = "HAProxy (runtime API), no checks"
    bare.append(bare_haproxy)
except StartFailed as error:
    print(f"left out: {error}")
bare_rows = summarize(run_scenario(stack, bare, Phases(scaled=3, canary=4, after=2)))
print(format_summary(bare_rows))
