#!/usr/bin/env node
// The `sluice` command (package.json "bin", for `npm link` or `npx sluice`): runs the
// TypeScript CLI through tsx's loader, resolved from this package wherever it is called from.
import { register } from "tsx/esm/api";

register();
await import("./main.ts");
