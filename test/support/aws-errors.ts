/** AWS SDK errors as a client throws them, for aws-sdk-client-mock to reject with. */

interface ServiceExceptionOptions {
  name: string;
  $fault: 'client' | 'server';
  $metadata: { httpStatusCode: number };
  message: string;
}

/** `Exception` (EC2ServiceException, SSMServiceException, ...) with error code `name`; a 5xx is the server's fault. */
export function awsError<E>(
  Exception: new (options: ServiceExceptionOptions) => E,
  name: string,
  { message = `${name} (mocked)`, status = 400 }: { message?: string; status?: number } = {},
): E {
  return new Exception({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
    message,
  });
}
