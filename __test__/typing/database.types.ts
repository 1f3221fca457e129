// A `Database` type in the form `supabase gen types typescript` writes, for the schema of
// postgrest-js's own test fixture (users, channels, messages with a foreign key to both, a
// function). The typing check (typing.check.ts) compiles against it under `tsc -p .`.

export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[]

export type Database = {
  public: {
    Tables: {
      users: {
        Row: {
          username: string
          data: Json | null
          age_range: unknown | null
          status: Database['public']['Enums']['user_status'] | null
          catchphrase: unknown | null
        }
        Insert: {
          username: string
          data?: Json | null
          age_range?: unknown | null
          status?: Database['public']['Enums']['user_status'] | null
          catchphrase?: unknown | null
        }
        Update: {
          username?: string
          data?: Json | null
          age_range?: unknown | null
          status?: Database['public']['Enums']['user_status'] | null
          catchphrase?: unknown | null
        }
        Relationships: []
      }
      channels: {
        Row: { id: number; data: Json | null; slug: string | null }
        Insert: { id?: number; data?: Json | null; slug?: string | null }
        Update: { id?: number; data?: Json | null; slug?: string | null }
        Relationships: []
      }
      messages: {
        Row: { id: number; data: Json | null; message: string | null; username: string; channel_id: number }
        Insert: { id?: number; data?: Json | null; message?: string | null; username: string; channel_id: number }
        Update: { id?: number; data?: Json | null; message?: string | null; username?: string; channel_id?: number }
        Relationships: [
          {
            foreignKeyName: 'messages_channel_id_fkey'
            columns: ['channel_id']
            isOneToOne: false
            referencedRelation: 'channels'
            referencedColumns: ['id']
          },
          {
            foreignKeyName: 'messages_username_fkey'
            columns: ['username']
            isOneToOne: false
            referencedRelation: 'users'
            referencedColumns: ['username']
          },
        ]
      }
    }
    Views: {
      [_ in never]: never
    }
    Functions: {
      get_status: {
        Args: { name_param: string }
        Returns: Database['public']['Enums']['user_status']
      }
    }
    Enums: {
      user_status: 'ONLINE' | 'OFFLINE'
    }
    CompositeTypes: {
      [_ in never]: never
    }
  }
}
