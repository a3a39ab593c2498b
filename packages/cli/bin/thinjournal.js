#!/usr/bin/env node
import { main, guardOutput, quietOutput } from '../dist/src/main.js';
// stdout's write failures become the command's (EPIPE: quiet exit 0; ENOSPC, EIO: ERR_OUTPUT, exit 1); a
// failing stderr is ignored. Without the guards either would crash with an unhandled 'error' event.
process.exitCode = await main(process.argv.slice(2), { stdout: guardOutput(process.stdout), stderr: quietOutput(process.stderr), env: process.env });
