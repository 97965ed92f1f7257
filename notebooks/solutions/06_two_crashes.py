stack.use_sherlock(retries=1, eject=True)
stack.scale(3)


def kill_two():
    return [stack.wizard.svkill("v1", now=True) for _ in range(2)]


two_crashes, _, _, _ = under_load("kill -9 twice", kill_two)
print("failed reloads with one retry:", failed(two_crashes))
stack.use_sherlock(retries=2)
stack.scale(3)
two_retries, _, _, _ = under_load("kill -9 twice, two retries", kill_two)
print("failed reloads with two retries:", failed(two_retries))
# One retry is not always enough: a call can pick a dead instance, then the other one.
