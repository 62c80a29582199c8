// Lambda Function URL events (payload format 2.0) and a context, as Lambda delivers them: shared by
// the in-process handler test and the bundled-handler test.
import type { LambdaEvent } from 'hono/aws-lambda';

/** A Lambda Function URL event, payload format 2.0, as Lambda delivers it. */
export function functionUrlEvent(method: 'GET' | 'POST', path: string, body: string | null, headers: Record<string, string>, sourceIp = '203.0.113.7'): LambdaEvent {
  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: {
      host: 'abcdefghijklmnopqrstuvwxyz123456.lambda-url.eu-west-1.on.aws',
      'x-amzn-tls-version': 'TLSv1.3',
      'x-forwarded-proto': 'https',
      'x-forwarded-port': '443',
      // What a client sent; Lambda's own view of the peer is requestContext.http.sourceIp.
      'x-forwarded-for': '198.51.100.66, 203.0.113.7',
      'x-amzn-trace-id': 'Root=1-67891233-abcdef012345678912345678',
      'user-agent': 'knockgw',
      ...headers,
    },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abcdefghijklmnopqrstuvwxyz123456',
      authentication: null,
      domainName: 'abcdefghijklmnopqrstuvwxyz123456.lambda-url.eu-west-1.on.aws',
      domainPrefix: 'abcdefghijklmnopqrstuvwxyz123456',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp, userAgent: 'knockgw' },
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      routeKey: '$default',
      stage: '$default',
      time: '25/Nov/2026:12:00:00 +0000',
      timeEpoch: 1795608000000,
    },
    body,
    isBase64Encoded: false,
  };
  // hono's type wants requestContext.authorizer, which events of an AuthType NONE URL do not carry.
  return event as unknown as LambdaEvent;
}

export const lambdaContext = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'knockgw-relay',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:knockgw-relay',
  memoryLimitInMB: '256',
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
  logGroupName: '/aws/lambda/knockgw-relay',
  logStreamName: '2026/11/25/[$LATEST]abcdef',
  getRemainingTimeInMillis: () => 10_000,
};
