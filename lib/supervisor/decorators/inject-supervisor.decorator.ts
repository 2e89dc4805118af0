import { Inject } from '@nestjs/common';
import { DEFAULT_SUPERVISOR } from '../../concurrency.constants.js';
import { getSupervisorToken } from '../utils/get-supervisor-token.util.js';

/**
 * Injects the `TaskSupervisor` named `name` (`'default'` when omitted). A name missing from the module options gets a
 * supervisor with the default options.
 */
export const InjectSupervisor = (name: string = DEFAULT_SUPERVISOR): PropertyDecorator & ParameterDecorator =>
  Inject(getSupervisorToken(name));
