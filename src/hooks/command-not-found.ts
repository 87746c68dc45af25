import type {Hook} from '@oclif/core'

/**
 * oclif, with spaces between topic and command, reads `dfs ls 'sample*'` as a command `ls:sample*`
 * when `ls` takes no argument, and says "command ls:sample* not found". This says what is wrong in
 * one line, exit 2, as every other bad input.
 */
const hook: Hook<'command_not_found'> = async function ({id, argv}) {
  const words = id.split(':')
  let known = words.length - 1
  while (known > 0 && !this.config.findCommand(words.slice(0, known).join(':'))) known--
  const command = words.slice(0, known).join(' ')
  const message =
    known > 0
      ? `${this.config.bin} ${command} takes no argument ${JSON.stringify(words.slice(known).join(' '))} (see ${this.config.bin} ${command} --help)`
      : `${JSON.stringify(words.join(' '))} is not a ${this.config.bin} command (see ${this.config.bin} --help)`
  if (argv?.includes('--json')) process.stdout.write(`${JSON.stringify({error: 'DFS_ERR_BAD_REQUEST', message})}\n`)
  else process.stderr.write(`Error: ${message}\n`)
  process.exitCode = 2
}

export default hook
