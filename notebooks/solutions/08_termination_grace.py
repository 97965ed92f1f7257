# A 5 s drain: the preStop sleep holds SIGTERM back 5 s, then the service gets its 5 s
# (SERVICE_GRACE) before SIGKILL. The pod's grace counts from the start of preStop, so it
# must cover both, plus a margin; shorter, and the kubelet kills calls under way.
import copy

from mwkit.wizard.wizard import SERVICE_GRACE, STOP_MARGIN

drain = 5
longer = copy.deepcopy(documents)
pod = longer[0]["spec"]["template"]["spec"]
pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] = drain
pod["terminationGracePeriodSeconds"] = int(drain + SERVICE_GRACE + STOP_MARGIN)
print("grace:", pod["terminationGracePeriodSeconds"], "s; problems:", validate(longer))

pod["terminationGracePeriod"] = pod.pop("terminationGracePeriodSeconds")  # a typo
print("with a typo:", validate(longer))
