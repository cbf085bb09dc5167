// Fetches (once, cached under /var/cache/dqp-e2e-engines) the Docker engines the e2e suites
// run against, so a slow mirror costs time here rather than inside a test's setup. Honours
// DQP_E2E_ENGINE like the suites do. Prints one line per engine.

import { ensureEngineBinaries, enginesUnderTest } from "../tests/e2e/support/engine-versions.ts";
import { runArgv } from "../tests/e2e/support/process.ts";

for (const flavour of enginesUnderTest()) {
  const started = performance.now();
  const binaries = await ensureEngineBinaries(flavour);
  const version = await runArgv([binaries.dockerd, "--version"]);
  if (version.code !== 0) throw new Error(`docker ${flavour.id}: ${binaries.dockerd} --version failed: ${version.stderr.trim()}`);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`docker ${flavour.id}: ${version.stdout.trim()} (${flavour.source}; ready in ${seconds} s)`);
}
