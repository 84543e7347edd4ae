package io.moemesh.gateway.grpc;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.moemesh.gateway.auth.ApiKeys;
import java.util.Optional;

/**
 * gRPC side of API-key auth: {@code authorization: Bearer KEY} metadata → tenant in the call's Context, or
 * UNAUTHENTICATED. Health and reflection stay open (probes and tooling carry no key).
 */
public final class AuthInterceptor implements ServerInterceptor {
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private final ApiKeys keys;

    public AuthInterceptor(ApiKeys keys) {
        this.keys = keys;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                        ServerCallHandler<Q, R> next) {
        if (!keys.enabled()) {
            return next.startCall(call, headers);
        }
        Optional<String> tenant = keys.tenantOf(ApiKeys.bearer(headers.get(AUTHORIZATION)));
        if (tenant.isEmpty()) {
            call.close(Status.UNAUTHENTICATED.withDescription(headers.containsKey(AUTHORIZATION)
                    ? "the API key is not valid" : "missing API key: send \"authorization: Bearer KEY\""), new Metadata());
            return new ServerCall.Listener<>() { };
        }
        return Contexts.interceptCall(Context.current().withValue(Tenants.KEY, tenant.get()), call, headers, next);
    }
}
