# Half of one instance's calls fail: peak-EWMA alone, with outlier ejection, and with the
# 503s retried on another instance too.
runs = [lab.run_cell(stack, {"policy": "peak_ewma"}, "failing", seconds=SECONDS),
        lab.run_cell(stack, {"policy": "peak_ewma", "outlier_5xx": 3}, "failing",
                     seconds=SECONDS),
        lab.run_cell(stack, {"policy": "peak_ewma", "outlier_5xx": 3, "retry_5xx": True},
                     "failing", seconds=SECONDS)]
print(lab.summary_table(runs))
for run in runs:
    print(f"{run['setting']}: {run['failed']} of {run['reloads']} reloads failed, "
          f"{run['ejections']} ejections, {run['extra_calls']} extra calls")
