package io.moemesh.cli.mesh;

import io.moemesh.service.tls.CertificateDirectory;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The environments {@code up} gives the expert-services, the router and the gateway (the kvcache-service's is
 * {@link KvCacheSettings}'s): the caller's settings, and on top what the mesh itself decides (model, ports, sockets,
 * instance ids, the placement file, the peers' endpoints, the block size, the TLS files). A service binds a property
 * from the first of its names it finds ({@link SpringEnvironment}), so a caller's {@code MOEMESH_GATEWAY_GRPCPORT}
 * would win over the {@code MOEMESH_GATEWAY_GRPC_PORT} the mesh chose: every decided setting is put in under one name
 * after every other name of it was removed ({@link SpringEnvironment#put}). The defaults the caller may override
 * ({@link SharedHostSettings}, the kvcache capacities) are put in only when no name of them is set.
 */
final class MeshEnvironments {
    private MeshEnvironments() {
    }

    /**
     * An expert instance's environment.
     *
     * @param socket the domain socket it listens on too (the mesh's unix transport), or null for TCP only
     */
    static Map<String, String> expert(Map<String, String> settings, MeshSpec spec, String id, int deviceSlot,
                                      int grpcPort, Path socket, Path placementFile, Path nativeCache) {
        Map<String, String> env = new LinkedHashMap<>(settings);
        SpringEnvironment.put(env, "moemesh.expert.model-dir", spec.model().toString());
        SpringEnvironment.put(env, "moemesh.expert.instance-id", id);
        SpringEnvironment.put(env, "moemesh.expert.device-slot", Integer.toString(deviceSlot));
        SpringEnvironment.put(env, "moemesh.expert.grpc-host", "127.0.0.1");
        SpringEnvironment.put(env, "moemesh.expert.grpc-port", Integer.toString(grpcPort));
        // a caller's socket would be every instance's, and the placement names the mesh's own
        if (socket == null) {
            SpringEnvironment.remove(env, "moemesh.expert.grpc-unix-socket");
        } else {
            SpringEnvironment.put(env, "moemesh.expert.grpc-unix-socket", socket.toString());
        }
        SpringEnvironment.put(env, "moemesh.expert.placement-file", placementFile.toString());
        SpringEnvironment.put(env, "moemesh.expert.native-cache-dir", nativeCache.toString());
        // The router places (LoadAssignment); the launcher's identity stays allowed, so tools and tests can still
        // switch placements on a mesh without a router.
        SpringEnvironment.put(env, "moemesh.expert.placer-identities", MeshLauncher.ROUTER + "," + MeshLauncher.PLACER);
        SharedHostSettings.expert(env, spec);
        return env;
    }

    /**
     * The router's environment: it publishes every epoch to {@code placementFile} (in the mesh's state folder, which
     * is its state directory: snapshots in {@code <state-dir>/router/}) and starts from that file's instances.
     */
    static Map<String, String> router(Map<String, String> settings, MeshSpec spec, int grpcPort, Path placementFile) {
        Map<String, String> env = new LinkedHashMap<>(settings);
        SpringEnvironment.put(env, "moemesh.router.model-dir", spec.model().toString());
        SpringEnvironment.put(env, "moemesh.router.state-dir", spec.stateDir().toString());
        SpringEnvironment.put(env, "moemesh.router.grpc-host", "127.0.0.1");
        SpringEnvironment.put(env, "moemesh.router.grpc-port", Integer.toString(grpcPort));
        SpringEnvironment.put(env, "moemesh.router.replicas", Integer.toString(spec.replicas()));
        // the instances of the epoch-1 file, in its order (the router's even deal is the same)
        SpringEnvironment.put(env, "moemesh.router.instances-from", placementFile.toString());
        return env;
    }

    /**
     * The gateway's environment.
     *
     * @param apiKeysFile the key file {@link MeshSecrets#gatewayApiKeys} wrote, or null (the caller's own stands)
     * @param routerEndpoint the router it follows (WatchPlacement, route reports), or null without a router
     * @param kvcacheEndpoint the kvcache-service it restores from and writes back to, or null without one
     */
    static Map<String, String> gateway(Map<String, String> settings, MeshSpec spec, Path apiKeysFile, int grpcPort,
                                       Path placementFile, Path nativeCache, String routerEndpoint,
                                       String kvcacheEndpoint) {
        Map<String, String> env = new LinkedHashMap<>(settings);
        if (apiKeysFile != null) {
            SpringEnvironment.put(env, MeshSecrets.API_KEYS_FILE_PROPERTY, apiKeysFile.toString());
        }
        SpringEnvironment.put(env, "moemesh.gateway.model-dir", spec.model().toString());
        SpringEnvironment.put(env, "moemesh.gateway.grpc-host", "127.0.0.1");
        SpringEnvironment.put(env, "moemesh.gateway.grpc-port", Integer.toString(grpcPort));
        // its starting placement; with a router it then follows the router's WatchPlacement
        SpringEnvironment.put(env, "moemesh.gateway.placement-file", placementFile.toString());
        SpringEnvironment.put(env, "moemesh.gateway.native-cache-dir", nativeCache.toString());
        SharedHostSettings.gateway(env);
        // without the service, a caller's endpoint would be another mesh's router or kvcache-service (a peer-uid
        // socket of the same user even accepts the gateway): up decides these, so --no-router / --no-kvcache
        // remove them as the TCP transport removes a caller's socket
        if (routerEndpoint != null) {
            SpringEnvironment.put(env, "moemesh.gateway.router.endpoint", routerEndpoint);
        } else {
            SpringEnvironment.remove(env, "moemesh.gateway.router.endpoint");
        }
        if (kvcacheEndpoint != null) {
            // the kvcache-service refuses a block size other than its own (FAILED_PRECONDITION on every call)
            SpringEnvironment.put(env, "moemesh.gateway.kvcache.endpoint", kvcacheEndpoint);
            SpringEnvironment.put(env, "moemesh.gateway.kv-block-tokens", Integer.toString(KvCacheSettings.BLOCK_TOKENS));
        } else {
            SpringEnvironment.remove(env, "moemesh.gateway.kvcache.endpoint");
        }
        return env;
    }

    /**
     * The three files of {@code identity}'s certificate, as a pod gets them from its Secret, and mode mtls:
     * {@code up} checks the internal ports' health with the mesh's client certificate, so a service on plaintext
     * would never be seen SERVING.
     *
     * @param service the service's property prefix: expert, router, kvcache or gateway
     */
    static void tls(Map<String, String> env, String service, CertificateDirectory tls, String identity) {
        String prefix = "moemesh." + service + ".tls.";
        SpringEnvironment.put(env, prefix + "mode", "mtls");
        SpringEnvironment.put(env, prefix + "cert-chain", tls.certChain(identity).toString());
        SpringEnvironment.put(env, prefix + "private-key", tls.privateKey(identity).toString());
        SpringEnvironment.put(env, prefix + "ca-bundle", tls.caBundle().toString());
    }

    /** HTTP and actuator ports, on loopback only: the local mesh is not meant to be reachable from the network. */
    static void http(Map<String, String> env, int httpPort, int managementPort) {
        SpringEnvironment.put(env, "server.port", Integer.toString(httpPort));
        SpringEnvironment.put(env, "management.server.port", Integer.toString(managementPort));
        SpringEnvironment.put(env, "server.address", "127.0.0.1");
        SpringEnvironment.put(env, "management.server.address", "127.0.0.1");
    }
}
