# frozen_string_literal: true

require "stringio"
require "tempfile"

module UWSGIBridge
  # rack.input: the request body, fetched from the worker as the app reads it
  # and kept, so that #rewind works (Rack 2.2 SPEC). Bodies past SPILL bytes
  # move from memory to an unlinked temp file.
  class Input
    CHUNK = 1 << 16
    SPILL = 1 << 20

    # ``length`` is the body size, or -1 when unknown (chunked request).
    def initialize(channel, length)
      @channel = channel
      @store = StringIO.new(String.new(encoding: BINARY))
      @size = 0  # bytes received so far
      @pos = 0   # the app's read position
      @eof = length.zero?
    end

    def gets
      loop do
        @store.seek(@pos)
        line = @store.gets
        if line && (line.end_with?("\n") || @eof)
          @pos += line.bytesize
          return line
        end
        return nil if line.nil? && @eof

        fetch(CHUNK)
      end
    end

    def read(length = nil, buffer = nil)
      raise ArgumentError, "negative length #{length} given" if length&.negative?

      until @eof || (length && @size - @pos >= length)
        fetch(length ? [length - (@size - @pos), CHUNK].min : CHUNK)
      end
      @store.seek(@pos)
      data = @store.read(length) || (length.nil? || length.zero? ? String.new(encoding: BINARY) : nil)
      @pos += data.bytesize if data
      return data unless buffer

      buffer.replace(data || EMPTY)
      data && buffer
    end

    def each
      while (line = gets)
        yield line
      end
      self
    end

    def rewind
      @pos = 0
      0
    end

    # Rack 3 lets apps close the input; the buffer is released by #finish.
    def close
      nil
    end

    # After the response: drop a spilled temp file now rather than at GC time.
    def finish
      @store.close unless @store.is_a?(StringIO)
    end

    private

    def fetch(want)
      data = @channel.ask(READ, want, DATA)
      if data.empty?
        @eof = true
        return
      end
      spill if @size + data.bytesize > SPILL && @store.is_a?(StringIO)
      @store.seek(0, IO::SEEK_END)
      @store.write(data)
      @size += data.bytesize
    end

    def spill
      file = Tempfile.new("uwsgi-py-rack-input")
      file.binmode
      file.unlink
      file.write(@store.string)
      @store = file
    end
  end
end
