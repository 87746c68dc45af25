import {DfsCommand, oclifArgs, oclifFlags} from '../lib/base-command.js'
import {runPut, putSpec} from '../cli/put.js'

export default class PutCommand extends DfsCommand {
  static override summary = 'Upload files; each succeeds only once the master has recorded it.'
  static override description = `Each file is hashed, sent to the least-loaded alive keeper the master names, verified and fsynced there, and recorded by the master; only then is it reported as stored. The master then copies it to more keepers in the background. Several files are uploaded concurrently. A name that already exists is refused and the stored file is kept, unless --force replaces it. FILE - reads stdin (with --name): it is spooled to a temp file in $TMPDIR while it arrives, then uploaded like a file.`

  static override examples = [
    '<%= config.bin %> put video.mp4',
    '<%= config.bin %> put clip.mp4 --name holiday.mp4',
    '<%= config.bin %> put *.mp4 --json',
    '<%= config.bin %> put ~/videos --recursive                  # as videos/…',
    '<%= config.bin %> put ~/videos --recursive --prefix 2024/trip # as 2024/trip/…',
    'ffmpeg -i in.mov -f mp4 -movflags frag_keyframe - | <%= config.bin %> put - --name out.mp4',
  ]

  static override args = oclifArgs(putSpec.args)
  static override flags = oclifFlags(putSpec.flags)
  static override strict = putSpec.strict

  async run(): Promise<void> {
    await runPut(this.io, await this.parseSpec(putSpec))
  }
}
