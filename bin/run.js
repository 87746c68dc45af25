#!/usr/bin/env node
import {readFileSync} from 'node:fs'

// `dfs --version` (and `-v`) is answered here, without importing @oclif/core: loading it costs
// ~100 ms, more than Node's own start. The line is the one oclif prints (its user agent).
const first = process.argv[2]
if (first === '--version' || first === '-v') {
  const pjson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  const arch = process.arch === 'ia32' ? 'x86' : process.arch
  process.stdout.write(`${pjson.name}/${pjson.version} ${process.platform}-${arch} node-${process.version}\n`)
} else {
  // The commands run hot (ls, stat, get, put, rm, cat, master, keeper) run without oclif when
  // their argv parses exactly; anything else (help, an error to report) is oclif's. They are
  // loaded from one bundle with V8's cached code (src/cli/client-bundle.ts).
  const {loadFastRunner} = await import('../dist/src/cli/client-bundle.js')
  const {runFast} = await loadFastRunner(first)
  if (!(await runFast(process.argv.slice(2)))) {
    // Why: on import, @oclif/core checks Node's version against its own engines with semver: 47
    // modules, a tenth of a client command's start. dfs's own engines (package.json) asks for more.
    process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1'
    const {execute} = await import('@oclif/core')
    await execute({dir: import.meta.url})
  }
}
