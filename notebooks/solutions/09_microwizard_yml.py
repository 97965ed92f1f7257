# Exercise: microwizard.yml. The service's name (lower case), the port it listens on in a
# container, and how Watson checks it. quote needs neither the directory nor a database.
(MY_SERVICE / "microwizard" / "microwizard.yml").write_text("""\
# How the Microwizard deploys quote.
service_name: quote
service_port: 5000
health_check:
  path: /health
  period: 1.0
  timeout: 0.5
  rise: 1
  fall: 2
""")
print((MY_SERVICE / "microwizard" / "microwizard.yml").read_text())
