print("prediction: about", 100 / 5, "% each")
stack.scale(5)
five = stack.reloads(rate=10, count=100).run()  # 10 s, in the foreground
print(format_table(summarize(five, instance_labels(five))))
stack.scale(3)  # back to three, as before the exercise
