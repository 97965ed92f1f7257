# Watson drains for 1 s, then the service gets SIGTERM and SIGKILL after 5 s more (the
# wizard's SERVICE_GRACE): the pod must be allowed at least that long to stop.
import copy

from mwkit.wizard.wizard import SERVICE_GRACE


def kubernetes_deployment_with_grace(spec, image: str, replicas: int,
                                     drain: float = 1.0) -> dict:
    deployment = kubernetes_deployment(spec, image, replicas)
    pod = deployment["spec"]["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = int(drain + SERVICE_GRACE) + 1
    container = pod["containers"][0]
    container["lifecycle"]["preStop"]["sleep"]["seconds"] = max(1, round(drain))
    container["livenessProbe"] = {**copy.deepcopy(container["readinessProbe"]),
                                 "failureThreshold": 6}
    return deployment


deployment = kubernetes_deployment_with_grace(spec, f"registry.example/popularity:{tag}", 2)
print(yaml.safe_dump(deployment, sort_keys=False))
