import {DfsCommand, oclifArgs, oclifFlags} from '../lib/base-command.js'
import {lsSpec, runLs} from '../cli/ls.js'

export default class LsCommand extends DfsCommand {
  static override summary = 'List stored files with their size and alive replicas.'
  static override description = `Names may hold folders, as S3 keys do ("videos/2024/a.mp4"). A PATTERN without wildcards lists every name that starts with it ("videos/" lists that folder and all below it); with wildcards it lists the names it matches whole: "*" and "?" stay within one folder, "**" crosses folders. Quote a pattern so that the shell leaves it alone.`

  static override examples = [
    '<%= config.bin %> ls',
    '<%= config.bin %> ls videos/',
    "<%= config.bin %> ls 'videos/*.mp4'",
    "<%= config.bin %> ls 'videos/**/*.mp4' --json",
  ]

  static override args = oclifArgs(lsSpec.args)
  static override flags = oclifFlags(lsSpec.flags)
  static override strict = lsSpec.strict

  async run(): Promise<void> {
    await runLs(this.io, await this.parseSpec(lsSpec))
  }
}
