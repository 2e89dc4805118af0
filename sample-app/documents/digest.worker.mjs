// The CPU-bound part of POST /documents/digest. It runs on FanOut's worker threads (workerFn in
// documents.controller.ts), so hashing a large batch never blocks the event loop that answers other requests.
// Plain JavaScript: a worker thread runs JavaScript only, and this file needs no build step, whether the app runs from
// its sources (tests) or from dist/ (the sample app's tsconfig copies it there with allowJs).
import { createHash } from 'node:crypto';

/**
 * sha256 applied `rounds` times: to the content, then to each digest in turn (a stand-in for real CPU-bound work).
 * @param {{ content: string; rounds: number }} job
 * @returns {string} the last digest, in hex
 */
export function digest({ content, rounds }) {
  let value = createHash('sha256').update(content).digest();
  for (let round = 1; round < rounds; round++) value = createHash('sha256').update(value).digest();
  return value.toString('hex');
}
