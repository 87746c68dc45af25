// `npm test` after the build: every test file of dist/test through node:test's run(), in
// suiteOrder (the slowest first). Not `node --test FILES`: Node 20 sorts the files it is given by
// name, and starts them in that order. Same runner, same per-file processes and timeout, and the
// reporter node --test picks (spec on a terminal, TAP otherwise); exit code 1 if any test failed.

import {readdirSync} from 'node:fs'
import {join} from 'node:path'
import {run} from 'node:test'
import {spec, tap} from 'node:test/reporters'
import {fileURLToPath} from 'node:url'

import {staleNames, suiteOrder} from './suite-order.js'

/** The flags this script takes, as node --test spells them. */
function parseFlags(args: string[]): {concurrency: number; timeout: number} {
  const flags = {concurrency: 2, timeout: Infinity}
  for (const arg of args) {
    const match = /^--test-(concurrency|timeout)=(\d+)$/.exec(arg)
    if (!match) throw new Error(`run-suite takes --test-concurrency=N and --test-timeout=MS only, not ${arg}`)
    flags[match[1] as 'concurrency' | 'timeout'] = Number(match[2])
  }

  return flags
}

let flags: {concurrency: number; timeout: number}
try {
  flags = parseFlags(process.argv.slice(2))
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`)
  process.exit(2)
}

const dir = fileURLToPath(new URL('.', import.meta.url))
const files = readdirSync(dir).filter((name) => name.endsWith('.test.js'))
const stale = staleNames(files)
if (stale.length > 0) process.stderr.write(`test/suite-order.ts ranks files that are not there (renamed or removed?): ${stale.join(', ')}\n`)

const stream = run({files: suiteOrder(files).map((file) => join(dir, file)), concurrency: flags.concurrency, timeout: flags.timeout})
stream.once('test:fail', () => {
  process.exitCode = 1
})
stream.compose(process.stdout.isTTY ? new spec() : tap).pipe(process.stdout)
