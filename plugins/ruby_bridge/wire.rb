# frozen_string_literal: true

# The Ruby side of the bridge's framed protocol (docs/ruby_bridge.md); mirrors wire.py.
#
# A frame is KIND (one ASCII byte) + LENGTH (u32 big-endian) + payload. Lower-case
# kinds come from the worker, upper-case ones go to it. Structured payloads use
# tagged values: N nil, T true, F false, I i64, S u32-length string, A array, H hash.

require "io/wait"

module UWSGIBridge
  BINARY = Encoding::BINARY
  EMPTY = "".b.freeze
  MAX_FRAME = 1 << 20 # body chunks are split into frames of at most this size

  # frame kinds: worker -> ruby
  INIT = "i"
  REQUEST = "q"
  DATA = "d"
  RETURN = "r"
  ERROR = "e"
  ABORT = "k"
  # frame kinds: ruby -> worker
  READY = "Y"
  HEAD = "H"
  BODY = "B"
  PATH = "P"
  DONE = "D"
  EXCEPTION = "X"
  READ = "R"
  CALL = "C"
  WRITE = "W"

  # the Ruby classes the worker may name in an ERROR frame
  ERROR_CLASSES = {
    "NotImplementedError" => NotImplementedError, "ArgumentError" => ArgumentError,
    "TypeError" => TypeError, "IOError" => IOError, "RuntimeError" => RuntimeError,
  }.freeze

  # The worker closed the channel: this process has nothing left to do. Not a
  # StandardError, so an app's ``rescue => e`` cannot swallow it.
  class ChannelClosed < Exception; end # rubocop:disable Lint/InheritException

  # The worker sent something this side does not understand.
  class ProtocolError < ChannelClosed; end

  def self.bin(string)
    string.encoding == BINARY ? string : string.b
  end

  # The client went away: raised inside body iteration to stop it.
  class ClientAbort < Exception; end # rubocop:disable Lint/InheritException

  # Tagged values, encoded and decoded through tables keyed by tag byte.
  module Value
    module_function

    def pack(value, out = String.new(encoding: BINARY))
      case value
      when nil then out << "N"
      when true then out << "T"
      when false then out << "F"
      when Integer then out << "I" << [value].pack("q>")
      when String then out << "S" << [value.bytesize].pack("N") << UWSGIBridge.bin(value)
      when Symbol then pack(value.to_s, out)
      when Array
        out << "A" << [value.size].pack("N")
        value.each { |item| pack(item, out) }
      when Hash
        out << "H" << [value.size].pack("N")
        value.each { |key, item| pack(item, pack(key, out)) }
      else raise TypeError, "cannot send a #{value.class} to the uwsgi-py worker"
      end
      out
    end

    def unpack(data)
      value, pos = unpack_at(data, 0)
      raise ProtocolError, "trailing bytes after a value" unless pos == data.bytesize

      value
    end

    def unpack_at(data, pos)
      decoder = DECODERS[data.getbyte(pos)] or raise ProtocolError, "unknown value tag at #{pos}"
      decoder.call(data, pos + 1)
    end

    def unpack_items(data, pos)
      count = data.unpack1("N", offset: pos)
      pos += 4
      items = Array.new(count) do
        item, pos = unpack_at(data, pos)
        item
      end
      [items, pos]
    end

    DECODERS = {
      "N".ord => ->(_data, pos) { [nil, pos] },
      "T".ord => ->(_data, pos) { [true, pos] },
      "F".ord => ->(_data, pos) { [false, pos] },
      "I".ord => ->(data, pos) { [data.unpack1("q>", offset: pos), pos + 8] },
      "S".ord => lambda { |data, pos|
        size = data.unpack1("N", offset: pos)
        [data.byteslice(pos + 4, size), pos + 4 + size]
      },
      "A".ord => ->(data, pos) { unpack_items(data, pos) },
      "H".ord => lambda { |data, pos|
        count = data.unpack1("N", offset: pos)
        pos += 4
        hash = {}
        count.times do
          key, pos = unpack_at(data, pos)
          hash[key], pos = unpack_at(data, pos)
        end
        [hash, pos]
      },
    }.freeze
  end

  # The socket to the worker. Output is buffered until flush; only the main
  # thread reads, so a CALL's answer cannot be stolen by another thread.
  class Channel
    attr_reader :aborted

    def initialize(io)
      @io = io
      @io.binmode
      @io.sync = true
      @out = String.new(capacity: 1 << 16, encoding: BINARY)
      @aborted = false
      @lock = Mutex.new
    end

    def frame(kind, payload = EMPTY)
      @lock.synchronize { @out << kind << [payload.bytesize].pack("N") << UWSGIBridge.bin(payload) }
    end

    def frame_value(kind, value)
      frame(kind, Value.pack(value))
    end

    def flush
      @lock.synchronize do
        @io.write(@out) unless @out.empty?
        @out.clear
      end
    end

    def discard
      @lock.synchronize { @out.clear }
    end

    # The next frame as [kind, payload]; nil at end of file (the worker is gone).
    def read_frame
      header = @io.read(5)
      return nil if header.nil? || header.bytesize < 5

      size = header.unpack1("N", offset: 1)
      payload = size.zero? ? EMPTY : @io.read(size)
      return nil if payload.nil? || payload.bytesize < size

      [header[0], payload]
    end

    def start_request
      @aborted = false
    end

    # Called between streamed chunks: stop if the worker said the client is gone.
    def check_abort
      raise ClientAbort, "the client went away" if @aborted
      return unless @io.wait_readable(0)

      await(ABORT)
    end

    # Wait for one of ``kinds`` (ABORT frames seen meanwhile are remembered).
    def await(*kinds)
      loop do
        kind, payload = read_frame
        raise ChannelClosed, "the uwsgi-py worker closed the channel" if kind.nil?

        if kind == ABORT
          @aborted = true
          raise ClientAbort, "the client went away" if kinds.include?(ABORT)

          next
        end
        return [kind, payload] if kinds.include?(kind)

        raise ProtocolError, "unexpected frame #{kind.inspect} (wanted #{kinds.join})"
      end
    end

    # A request-reply exchange with the worker (UWSGI.* calls, rack.input reads).
    def ask(kind, value, answer)
      unless Thread.current == Thread.main
        raise ThreadError, "the uwsgi-py channel is only usable from the main (request) thread"
      end

      frame_value(kind, value)
      flush
      got, payload = await(answer, ERROR)
      return payload if got == answer

      klass, message = Value.unpack(payload)
      raise ERROR_CLASSES.fetch(klass, RuntimeError), message.force_encoding(Encoding::UTF_8)
    end
  end
end
