// Nothing a test process starts outlives it: every child it spawned (the launcher's registry in
// src/roles/cluster/node-process.ts) is killed and every temp dir it made is removed when it
// exits, also when it exits early: a failed hook, an uncaught error, or the test runner's SIGTERM
// when a file outlives --test-timeout (that SIGTERM is how Node 20 ends a file that hangs).

import {rmSync} from 'node:fs'
import {constants} from 'node:os'

import {killTrackedChildren} from '../../src/roles/cluster/node-process.js'

const dirs = new Set<string>()
const exitHooks = new Set<() => void>()
const reporters: Array<() => string> = []
let installed = false

/** Removes `dir` when this process exits, unless it was removed before (then it is a no-op). */
export function removeAtExit(dir: string): void {
  installCleanup()
  dirs.add(dir)
}

/**
 * Runs `hook` (synchronous) when this process exits, after its children were killed and before its
 * temp dirs are removed: for what a test made outside the file system (network namespaces). Returns
 * the function that unregisters it, for when the test undid it itself.
 */
export function runAtExit(hook: () => void): () => void {
  installCleanup()
  exitHooks.add(hook)
  return () => exitHooks.delete(hook)
}

/** Adds what to print when this process is stopped by a signal (e.g. the logs of the servers still running). */
export function reportOnSignal(report: () => string): void {
  reporters.push(report)
}

/**
 * Installs the hooks, once. It runs at the first use rather than at import, so that a program with
 * signal handling of its own (the chaos run) has installed it by then and keeps it; 'exit' is
 * always ours.
 */
export function installCleanup(): void {
  if (installed) return
  installed = true
  process.on('exit', cleanUpNow)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(signal) > 0) continue
    process.once(signal, () => {
      const reports = reporters.map((report) => report()).filter(Boolean)
      process.stderr.write(`\ntest process got ${signal}: killing its children and removing its temp dirs\n${reports.join('\n')}\n`)
      // 'exit' follows, and cleans up.
      process.exit(128 + constants.signals[signal])
    })
  }
}

/**
 * Kills every child still running, saying so: a test that leaves a server running is a bug worth
 * seeing even when it passed (and its pipes would keep the process from ever exiting).
 */
export function killLeftovers(when: string): void {
  const killed = killTrackedChildren('SIGKILL')
  if (killed > 0) process.stderr.write(`${when}: killed ${killed} child process${killed === 1 ? '' : 'es'} still running\n`)
}

/** Synchronous, for the 'exit' event: kills what still runs, then removes the dirs. */
function cleanUpNow(): void {
  killLeftovers('test process exiting')
  for (const hook of exitHooks) {
    try {
      hook()
    } catch (error) {
      process.stderr.write(`cleanup at exit failed: ${(error as Error).message}\n`)
    }
  }

  for (const dir of dirs) {
    try {
      // A child killed a moment ago may still add a file: retry on ENOTEMPTY.
      rmSync(dir, {recursive: true, force: true, maxRetries: 5})
    } catch (error) {
      process.stderr.write(`could not remove ${dir}: ${(error as Error).message}\n`)
    }
  }
}
