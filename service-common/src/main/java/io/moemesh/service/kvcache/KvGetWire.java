package io.moemesh.service.kvcache;

import io.grpc.MethodDescriptor;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;

/**
 * {@code moemesh.kvcache.v1.KvCacheService/Get} with the zero-copy reply marshaller ({@link GetReplyMarshaller}):
 * the same method and wire format as the generated descriptor, each reply's chunk held as a {@code ByteBuffer}
 * instead of a {@code ByteString}. The kvcache-service serves {@link #SERVER}; a client calls
 * {@link #client(int)} for its block size.
 */
public final class KvGetWire {
    /** The service's side: it only writes replies. */
    public static final MethodDescriptor<GetRequest, GetReply> SERVER = client(0);

    private KvGetWire() {
    }

    /** The client's side for blocks of {@code blockBytes}: a block's first chunk is read into a block's array. */
    public static MethodDescriptor<GetRequest, GetReply> client(int blockBytes) {
        return KvCacheServiceGrpc.getGetMethod().toBuilder(KvCacheServiceGrpc.getGetMethod().getRequestMarshaller(),
                new GetReplyMarshaller(blockBytes)).build();
    }
}
