# Round robin alone, then round robin with hedging, against the slow instance.
runs = [lab.run_cell(stack, {"policy": "round_robin"}, "slow", seconds=SECONDS),
        lab.run_cell(stack, {"policy": "round_robin", "hedge": 0.9}, "slow",
                     seconds=SECONDS)]
print(lab.summary_table(runs))
alone, hedged = runs
print(f"hedging: {hedged['within_1s'] - alone['within_1s']:+.0f} points within 1 s, "
      f"for {hedged['extra_calls']} extra calls")
