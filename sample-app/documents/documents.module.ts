import { Module } from '@nestjs/common';
import { DocumentStoreService } from './document-store.service.js';
import { DocumentsController } from './documents.controller.js';

@Module({ controllers: [DocumentsController], providers: [DocumentStoreService] })
export class DocumentsModule {}
