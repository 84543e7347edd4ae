package io.moemesh.gateway.grpc;

import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;

/**
 * Charges a Generate or Tokenize call to its tenant's rate when it starts, once, right after {@link AuthInterceptor}
 * named the tenant and before its message is asked for: whether it is then served or refused (a message over
 * max-request-bytes, one that is not a valid request, a request-read timeout, the held-bytes budget), as the HTTP
 * API charges a request right after its authentication (gateway/README.md, AdmissionProperties). A tenant past its
 * rate is closed RESOURCE_EXHAUSTED here, the description ending with the seconds the HTTP API's 429 gives in
 * Retry-After ({@link GatewayStatus}): no byte of its message is read (nothing asked for it), so it holds none of
 * the server's max-held-request-bytes budget, no intake permit and no half-close timer. ModelInfo is not charged.
 * Must run after {@link AuthInterceptor} (before it in the list given to {@code ServerInterceptors.intercept}).
 */
public final class TenantRateInterceptor implements ServerInterceptor {
    private static final String GENERATE = GatewayServiceGrpc.getGenerateMethod().getFullMethodName();
    private static final String TOKENIZE = GatewayServiceGrpc.getTokenizeMethod().getFullMethodName();
    private final GenerationService service;

    public TenantRateInterceptor(GenerationService service) {
        this.service = service;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                        ServerCallHandler<Q, R> next) {
        String method = call.getMethodDescriptor().getFullMethodName();
        try {
            if (method.equals(GENERATE)) {
                // Counted in requests_total when refused, as an HTTP generation request is.
                service.chargeRate(Tenants.current());
            } else if (method.equals(TOKENIZE)) {
                service.admission().chargeRate(Tenants.current());
            }
        } catch (RuntimeException e) {
            call.close(GatewayStatus.ofCall(e, "the request's admission"), new Metadata());
            return new ServerCall.Listener<>() { };
        }
        return next.startCall(call, headers);
    }
}
