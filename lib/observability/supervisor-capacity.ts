import type { TaskSupervisor } from '../supervisor/task-supervisor.js';

/** @internal A supervisor's `maxChildren` (the dashboard's and health's saturation), null when unbounded. */
export function maxChildren(supervisor: TaskSupervisor): number | null {
  const max = supervisor['options'].maxChildren;
  return Number.isFinite(max) ? max : null;
}
