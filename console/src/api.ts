/** The HTTP API as the page uses it: GET with the configured credential, JSON back. */
import { authorizedFetch, type ConsoleConfig } from './config.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Api {
  get<T>(path: string, params?: Record<string, string | number | undefined>): Promise<T>;
  /** GET that answers undefined when the route does not exist (404 or 405): an older API. */
  optional<T>(path: string, params?: Record<string, string | number | undefined>): Promise<T | undefined>;
}

export function api(config: ConsoleConfig): Api {
  const get = async <T>(path: string, params: Record<string, string | number | undefined> = {}) => {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params))
      if (value !== undefined && value !== '') query.set(name, String(value));
    const url = `${config.apiBase}${path}${query.size > 0 ? `?${query}` : ''}`;
    const response = await authorizedFetch(config, url);
    if (!response.ok) {
      const body = (await response.json().catch(() => ({}))) as { message?: string };
      throw new ApiError(response.status, body.message ?? `HTTP ${response.status} from ${path}`);
    }
    return (await response.json()) as T;
  };
  return {
    get,
    async optional(path, params) {
      try {
        return await get(path, params);
      } catch (error) {
        if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return undefined;
        throw error;
      }
    },
  };
}
