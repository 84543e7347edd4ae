package io.moemesh.gateway.grpc;

import io.grpc.Context;

/** The tenant of the current gRPC call, set by {@link AuthInterceptor}. */
final class Tenants {
    static final String DEFAULT = "default";
    static final Context.Key<String> KEY = Context.key("moemesh-tenant");

    private Tenants() {
    }

    static String current() {
        String t = KEY.get();
        return t == null ? DEFAULT : t;
    }
}
