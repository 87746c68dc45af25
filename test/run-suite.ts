// `npm test` after the build: node --test over every test file of dist/test, in suiteOrder (the
// slowest first), with the flags given to this script. Its exit code is node --test's.

import {spawn} from 'node:child_process'
import {readdirSync} from 'node:fs'
import {join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'

import {staleNames, suiteOrder} from './suite-order.js'

const dir = fileURLToPath(new URL('.', import.meta.url))
const files = readdirSync(dir).filter((name) => name.endsWith('.test.js'))
const stale = staleNames(files)
if (stale.length > 0) process.stderr.write(`test/suite-order.ts ranks files that are not there (renamed or removed?): ${stale.join(', ')}\n`)

const runner = spawn(process.execPath, ['--test', ...process.argv.slice(2), ...suiteOrder(files).map((file) => relative(process.cwd(), join(dir, file)))], {stdio: 'inherit'})
// Ctrl-C reaches the runner too (one process group): this process waits for it to finish and report.
process.on('SIGINT', () => {})
process.on('SIGTERM', () => runner.kill('SIGTERM'))
runner.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
