# The DNS approaches again, with answers valid 1 s instead of 5 (about 25 s).
# Prediction: DNS with health fails fewer calls after the kill (a caller forgets the dead
# instance at most 1 s after the Directory does); pure DNS fails about as many (no TTL
# helps when the record itself stays); both ask the DNS server about five times as often.
from mwkit.approaches.dns import HealthDns, PureDns
from mwkit.errors import StartFailed

try:
    short_ttl = [PureDns(stack, ttl=1), HealthDns(stack, ttl=1)]
except StartFailed as error:
    print(f"left out: {error}")
else:
    ttl_rows = summarize(run_scenario(stack, short_ttl, Phases(scaled=3, canary=4, after=2)))
    print(format_summary(ttl_rows))
    before = {row["approach"]: row for row in rows}
    for row in ttl_rows:
        earlier = before[row["approach"]]["failed_after_kill"]
        print(f"{row['approach']}: failed after the kill: {earlier} with a TTL of {TTL} s, "
              f"{row['failed_after_kill']} with 1 s")
