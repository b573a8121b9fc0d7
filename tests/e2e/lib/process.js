// Stopping the servers the tests start (Synapse, dnsmasq, the docker image's Prosody).

/** SIGTERM, then SIGKILL if the child is still there 5 s later; resolves once it has exited. */
export async function terminate(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}
