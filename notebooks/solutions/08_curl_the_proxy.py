# Start the proxy again and call it the way a Rails or Go monolith would: plain HTTP.
import shutil
import subprocess

with running(command, ready_url=f"{proxy_url}/popularity/health",
             log_path=Path(WORKDIR) / "sherlock-proxy.log"):
    if shutil.which("curl"):
        reply = subprocess.run(["curl", "-si", "--max-time", "5", f"{proxy_url}/popularity/health"],
                               capture_output=True, text=True, timeout=10).stdout
    else:  # no curl on this machine: the same request from Python
        answer = requests.get(f"{proxy_url}/popularity/health", timeout=5)
        reply = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
print(reply)
named = [line for line in reply.splitlines() if line.lower().startswith("x-sherlock-instance")]
print("the header that names the instance:", named)
