# The same contract as a Consul service definition: Consul's agent runs the check (Watson's
# job) and keeps the catalog (the Directory's); `DeregisterCriticalServiceAfter` is the lease.
import json


def consul_service(spec, instance_id: str, address: str, port: int) -> dict:
    check = spec.health_check
    return {"ID": instance_id, "Name": spec.name, "Address": address, "Port": port,
            "Check": {"HTTP": f"http://{address}:{port}{check.path}",
                      "Interval": f"{check.period:g}s", "Timeout": f"{check.timeout:g}s",
                      "SuccessBeforePassing": check.rise,
                      "FailuresBeforeCritical": check.fall,
                      "DeregisterCriticalServiceAfter": "1m"}}


host, _, instance_port = instances[0].address.rpartition(":")
print(json.dumps(consul_service(spec, instances[0].id, host, int(instance_port)), indent=2))
