/** The public API, called with the session's token; a refused token signs the page out. */
import { getToken, signOut } from './session.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await request(method, path, body);
  if (response.status === 204 || response.status === 202) {
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
  return (await response.json()) as T;
}

/** A job's output file, downloaded with the token (a plain link cannot carry it). */
export async function download(path: string, fileName: string): Promise<void> {
  const blob = await (await request('GET', path)).blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function request(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${getToken() ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.ok) return response;
  if (response.status === 401) signOut();
  throw new ApiError(response.status, await errorMessage(response));
}

/** The API's `{ error: { message, details } }`, as one sentence. */
async function errorMessage(response: Response): Promise<string> {
  try {
    const { error } = (await response.json()) as {
      error?: { message?: string; details?: { field?: string; message?: string }[] };
    };
    const details = (error?.details ?? []).map((d) => `${d.field}: ${d.message}`).join('; ');
    return [error?.message ?? `${response.status} ${response.statusText}`, details].filter(Boolean).join(': ');
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}
